from services.gateway.app import NAME, build
from shared.server import main

main(NAME, build)
