from tools.cli.main import run

run()
