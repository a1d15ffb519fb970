"""mmident-jax: identifiability of multimodal contrastive learning in JAX."""
