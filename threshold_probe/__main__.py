from threshold_probe.cli.entry import main

main()
