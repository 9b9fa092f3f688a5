# Fails when a kernel or device helper includes a CUDA toolkit header: NVRTC on a machine without the toolkit
# cannot find them (see docs/ARCHITECTURE.md, Kernels).
file(GLOB_RECURSE files "${DIR}/*.cu" "${DIR}/*.cuh")
foreach(f ${files})
  file(STRINGS ${f} hits REGEX "#include[ \t]*<(cuda_|cuda\\.h|cublas|curand|cooperative_groups)")
  if(hits)
    message(FATAL_ERROR "${f} includes a CUDA toolkit header: ${hits}")
  endif()
endforeach()
