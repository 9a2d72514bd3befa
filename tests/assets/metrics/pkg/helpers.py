import subprocess


def hostname():
    return subprocess.run(["hostname"], capture_output=True, text=True, check=False).stdout
