from lutgen.cli import main

main()
