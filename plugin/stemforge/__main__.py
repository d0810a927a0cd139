import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line itself loads (milliseconds)
    print("stemforge: interrupted", file=sys.stderr)
    sys.exit(130)
sys.exit(main())
