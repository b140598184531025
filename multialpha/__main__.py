from multialpha.cli import main

main()
