"""`studio train` (being written)."""


def add_arguments(parser):
    pass


def run(args):
    print("studio train is not available yet")
    return 1
