// The explicit algorithm table (see algos/algorithm.h). Empty until the first algorithm lands.
