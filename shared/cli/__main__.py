from shared.cli.main import app

app(prog_name="recsys")
