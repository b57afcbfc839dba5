(function () {
  var data = JSON.parse(document.getElementById("wf-metrics").textContent);
  var en = data.lang === "en";
  if (!window.echarts) return;
  var d = echarts.init(document.getElementById("chart-dept"));
  d.setOption({
    animation: false,
    title: { text: en ? "On-time rate and overdue by department" : "各部门按时办结率与超期", textStyle: { fontSize: 14 } },
    tooltip: {}, legend: { bottom: 0 },
    xAxis: { type: "category", data: data.departments.map(function (r) { return (en ? r.name_en : r.name_zh) || r.department; }) },
    yAxis: [{ type: "value", max: 100, name: "%" }, { type: "value", name: en ? "items" : "件" }],
    series: [
      { name: en ? "on-time %" : "按时率%", type: "bar", data: data.departments.map(function (r) { return r.on_time_rate == null ? 0 : Math.round(r.on_time_rate * 100); }) },
      { name: en ? "overdue now" : "当前超期", type: "bar", yAxisIndex: 1, itemStyle: { color: "#b42318" }, data: data.departments.map(function (r) { return r.overdue_now; }) }
    ]
  });
  var m = echarts.init(document.getElementById("chart-month"));
  m.setOption({
    animation: false,
    title: { text: en ? "Handled per month" : "每月办结量", textStyle: { fontSize: 14 } },
    tooltip: {}, legend: { bottom: 0 },
    xAxis: { type: "category", data: data.months.map(function (r) { return r.month; }) },
    yAxis: { type: "value" },
    series: [
      { name: en ? "handled" : "办结", type: "line", data: data.months.map(function (r) { return r.handled; }) },
      { name: en ? "returned" : "退件", type: "line", data: data.months.map(function (r) { return r.corrections; }) }
    ]
  });
})();
