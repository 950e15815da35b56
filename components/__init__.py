"""ExpoScholar infrastructure components: one ComponentResource per module."""
