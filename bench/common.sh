# Shell functions the bench/*/run.sh scripts share; source it.

# On ext4 without a journal (this kind of machine), inodes freed in the last ~5 minutes are
# skipped, one buffer lookup each, every time a new inode is allocated: extracting soon after
# deleting a big tree is many times slower for every tool alike and the ratios mean nothing.
# The scripts delete their own trees only at exit (touching STAMP) and wait out the previous
# run's deletions with this.
# wait_out_deletions STAMP
wait_out_deletions() {
  if [ -f "$1" ]; then
    local wait_s=$(($(stat -c %Y "$1") + 330 - $(date +%s)))
    if [ "$wait_s" -gt 0 ]; then
      echo "== waiting ${wait_s}s for the last run's deleted inodes to age (see bench/common.sh)" >&2
      sleep "$wait_s"
    fi
  fi
}

# The median of the numbers on stdin, one a line.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# col FILE N: the median of column 1 (wall) for N=1, else of columns 2 + 3 (user + sys cpu), of
# the "wall user sys" lines /usr/bin/time -f "%e %U %S" appended to FILE.
col() { awk -v c="$2" '{ if (c == 1) print $1; else print $2 + $3 }' "$1" | median; }
