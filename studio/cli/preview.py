"""`studio preview` (being written)."""


def add_arguments(parser):
    pass


def run(args):
    print("studio preview is not available yet")
    return 1
