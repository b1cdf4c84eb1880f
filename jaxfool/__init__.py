"""jaxfool: fooling and explaining convolutional networks in JAX."""
