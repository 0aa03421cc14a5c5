from services.profile.store import metadata
from shared.db import run_migrations_env

run_migrations_env(metadata)
