"""`studio export` (being written)."""


def add_arguments(parser):
    pass


def run(args):
    print("studio export is not available yet")
    return 1
