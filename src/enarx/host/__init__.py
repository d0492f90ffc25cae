"""The host side of a keep: launch it through a backend and supervise it over the protocol channel."""
