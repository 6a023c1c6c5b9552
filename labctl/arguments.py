"""The host programs' command lines, with the scripts' manners: -h or --help prints the
program's own text (its usage, how long it takes, what it changes) as written, and a
wrong argument is one line on stderr and exit status 2."""

import argparse


class Parser(argparse.ArgumentParser):
    def __init__(self, prog, help_text):
        super().__init__(prog=prog, description=help_text, usage=argparse.SUPPRESS)

    def print_help(self, file=None):
        print(self.description, file=file)

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")
