from wellknown_build.cli import main

if __name__ == "__main__":  # (not when a helper process imports it: staging.py)
    main(prog_name="wellknown-build")
