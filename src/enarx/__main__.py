from enarx.cli.entry import main

main()
