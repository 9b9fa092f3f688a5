# hpcengine_add_fatbin(target sources): compile each .cu into one fatbin (build/kernels/NAME.fatbin, with its source
# stamp) for sm_80, sm_90 and compute_90 PTX when nvcc is available; otherwise report and add nothing (the engine then
# relies on NVRTC at run time). Point HPCENGINE_KERNEL_DIR at build/kernels, or copy it beside the assembly.
set(HPCENGINE_CUDA_ARCHS "80;90" CACHE STRING "SASS architectures for the kernel fatbin")
find_program(HPCENGINE_NVCC nvcc HINTS /usr/local/cuda/bin)

function(hpcengine_add_fatbin target sources)
  if(NOT HPCENGINE_NVCC)
    message(STATUS "nvcc not found: skipping the ahead-of-time kernel fatbin (NVRTC compiles kernels at run time)")
    return()
  endif()
  if(NOT sources)
    message(STATUS "no kernels in native/kernels yet")
    return()
  endif()
  set(gencode "")
  foreach(arch ${HPCENGINE_CUDA_ARCHS})
    list(APPEND gencode "-gencode=arch=compute_${arch},code=sm_${arch}")
  endforeach()
  list(APPEND gencode "-gencode=arch=compute_90,code=compute_90")
  set(outputs "")
  foreach(src ${sources})
    get_filename_component(name ${src} NAME_WE)
    set(out "${CMAKE_CURRENT_BINARY_DIR}/kernels/${name}.fatbin")
    file(GLOB_RECURSE headers "${CMAKE_CURRENT_SOURCE_DIR}/native/include/*.cuh")
    # The stamp lets the engine refuse a fatbin built from other sources than the ones it embeds.
    add_custom_command(OUTPUT ${out} ${out}.sha256
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/kernels
      COMMAND ${HPCENGINE_NVCC} --fatbin -std=c++17 -I${CMAKE_CURRENT_SOURCE_DIR}/native/include ${gencode} -o ${out} ${src}
      COMMAND ${CMAKE_COMMAND} -DSRC=${src} -DINCLUDE_DIR=${CMAKE_CURRENT_SOURCE_DIR}/native/include -DOUT=${out}.sha256
              -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/KernelStamp.cmake
      DEPENDS ${src} ${headers} VERBATIM)
    list(APPEND outputs ${out})
  endforeach()
  add_custom_target(${target} ALL DEPENDS ${outputs})
endfunction()
