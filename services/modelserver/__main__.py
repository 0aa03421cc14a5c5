import os

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) is not an error; keep warnings.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from services.modelserver.app import NAME, build
from shared.server import main

main(NAME, build)
