from threshold_probe.cli.app import main

main()
