"""``python -m collectors.kis_sim serve|fault|truth ...`` (the same click group as ``observer sim``)."""

from collectors.kis_sim.cli import main

if __name__ == "__main__":
    main()
