// Wiring only: the commands are defined in *Command.swift.
EdgeproxyCommand.main()
