"""GPU workers: small-model activities served by an in-process engine (vLLM) on the GPU task queue."""
