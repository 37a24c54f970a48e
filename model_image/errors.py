"""The two ways the launcher fails, each with its own exit status."""


class LauncherError(Exception):
    """A failure the operator can act on; printed as one message, without a traceback."""

    exit_code = 1


class SettingsError(LauncherError):
    """A setting is missing, malformed, or conflicts with another (exit status 2, as argparse uses)."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"  - {p}" for p in problems))


class FetchError(LauncherError):
    """Downloading or verifying the model failed; nothing was left in the cache."""
