from wellknown_build.cli import main

main(prog_name="wellknown-build")
