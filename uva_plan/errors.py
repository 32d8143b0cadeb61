"""One exception type for bad user input, so the CLI can turn it into one line and exit code 2."""


class UserInputError(ValueError):
    """Raised for input a user can fix (bad file, bad value, wrong shape). The message says what was
    wrong and what was expected; the CLI prints it without a traceback."""
