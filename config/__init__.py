"""Settings of docsight (environment variables), in one place: :mod:`docsight.config.settings`."""

from .settings import Settings, SettingsError, get_settings, load_settings

__all__ = ["Settings", "SettingsError", "get_settings", "load_settings"]
