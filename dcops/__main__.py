from dcops.cli.main import main

main()
