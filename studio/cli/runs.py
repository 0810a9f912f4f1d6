"""`studio runs` (being written)."""


def add_arguments(parser):
    pass


def run(args):
    print("studio runs is not available yet")
    return 1
