from tools.cli.main import app

app(prog_name="recsys")
