"""The `aos` command line (click): `services.cli.main:main`, also `python -m services.cli`."""
