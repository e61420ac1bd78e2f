"""Host driver of the convolution accelerator."""
