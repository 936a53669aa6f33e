#include "src/vectorize.hpp"
