SDK_VERSION = "1.0.0rc0"
__version__ = SDK_VERSION
