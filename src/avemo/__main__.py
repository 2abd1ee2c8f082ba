from avemo.cli import run

run()
