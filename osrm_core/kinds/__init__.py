"""The task kinds registered in osrm_core.tasks.kinds: classification (a head) and generative (a causal LM)."""
