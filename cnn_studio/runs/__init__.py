"""The project's runs in the studio: where they are kept, bringing them back, comparing them, sweeps."""
