"""Where raw click-stream comes from: the synthetic REES46-format generator."""
