"""finecliper: dynamic facial expression recognition with FineCLIPER."""
__version__ = "0.1.0"
