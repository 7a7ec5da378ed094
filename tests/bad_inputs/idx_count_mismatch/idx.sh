# Writes N 2x2 uint8 images and M labels (class i % 3) in IDX format: $1=N $2=M [$3=images magic hex]
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
idx() { # idx N M MAGIC
    { printf "${3:-\\000\\000\\010\\003}"; be32 $1; be32 2; be32 2
      for i in $(seq $1); do printf '\001\002\003\004'; done; } > images.idx
    { printf '\000\000\010\001'; be32 $2
      for i in $(seq $2); do printf "\\$(printf %03o $((i % 3)))"; done; } > labels.idx
}
