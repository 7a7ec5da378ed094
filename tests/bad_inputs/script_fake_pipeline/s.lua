return { _kind = "pipeline" }
