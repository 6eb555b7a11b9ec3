cat <<EOF
rm -rf /
