"""`studio gui` (being written)."""


def add_arguments(parser):
    pass


def run(args):
    print("studio gui is not available yet")
    return 1
