"""The approval process: stages as data, review tasks, clocks and deadlines."""
