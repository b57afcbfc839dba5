"""The parallel checks (DESIGN section 4): department rule sets as data, a registry of rule
evaluators, spatial predicates as composable expressions, raster zonal statistics, the engine."""
