"""Device backends (cpu, gpu, npu), each a builtin plugin registering itself."""
