#include "core/allocation_scope.hpp"

namespace deskml {
namespace {

thread_local AllocationScope* t_scope = nullptr;

}  // namespace

AllocationScope* AllocationScope::current() { return t_scope; }

AllocationScope::Guard::Guard(AllocationScope* scope) : previous_(t_scope) { t_scope = scope; }

AllocationScope::Guard::~Guard() { t_scope = previous_; }

}  // namespace deskml
