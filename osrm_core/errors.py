"""User-facing errors: one line, names the field or file and the fix; the CLI prints them without a traceback."""


class OsrmError(Exception):
    """An error caused by input the user controls (config, paths, artifacts).

    The message is a single line: what is wrong, where (field or file), and what to do.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
