from services.policy.app import NAME, build
from shared.server import main

main(NAME, build)
