# cmake -DSRC=<kernel.cu> -DINCLUDE_DIR=<native/include> -DOUT=<file> -P KernelStamp.cmake
# Writes the stamp the engine checks before it uses an ahead-of-time fatbin (KernelImages.Stamp): SHA-256 of the
# kernel source followed, for each header in ordinal order of include name, by "\n//-- NAME\n" and the header's text.
file(READ "${SRC}" text)
file(GLOB_RECURSE headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/*.cuh")
list(SORT headers)
foreach(h IN LISTS headers)
  file(READ "${INCLUDE_DIR}/${h}" header)
  string(APPEND text "\n//-- ${h}\n${header}")
endforeach()
string(SHA256 stamp "${text}")
file(WRITE "${OUT}" "${stamp}\n")
